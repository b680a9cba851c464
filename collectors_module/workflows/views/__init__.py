"""The Workflow Builder and the knowledge-graph page of an app (owner only; else 404).

- `draft`: the workflow being edited, kept in the session until it is saved.
- `choices`: what a new node can be (an operator, this app's models, builtin/main) and its form.
- `layout`: the SVG drawing of the graph.
- `builder`: the pages (workflow list, editor, add/remove node, save, discard, delete).
- `try_it`: runs the saved workflow on one input and shows every node's output.
- `knowledge_graph`: the app's concept relations.

htmx requests get partials (`{% partialdef %}` blocks of the page templates); full-page posts
redirect after success (Post/Redirect/Get).
"""
