// The product page's five collector operations (add, update, list, get, delete) written with
// the Node.js client, as a Clarifai user would: ClarifaiStub.grpc() reads CLARIFAI_GRPC_BASE,
// and grpc-js trusts the CA named by GRPC_DEFAULT_SSL_ROOTS_FILE_PATH. Field names are the
// protos' snake_case names (the client loads them with keepCase).
//
//   node product_page.js '{"USER_ID": ..., "PAT": ..., "APP_ID": ..., ...}'
// Prints one JSON line: what each operation answered.

const { ClarifaiStub, grpc } = require("clarifai-nodejs-grpc");

const cfg = JSON.parse(process.argv[2]);
const stub = ClarifaiStub.grpc();
const metadata = new grpc.Metadata();
metadata.set("authorization", "Key " + cfg.PAT);
const userAppId = { user_id: cfg.USER_ID, app_id: cfg.APP_ID };

function call(method, request) {
  return new Promise((resolve, reject) => {
    stub[method](request, metadata, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

function collector(id, description) {
  return {
    id,
    description,
    pre_queue_workflow_id: cfg.PRE_QUEUE_WORKFLOW_ID,
    post_queue_workflow_id: cfg.POST_QUEUE_WORKFLOW_ID,
    collector_source: {
      api_post_model_outputs_collector_source: {
        model_user_id: cfg.USER_ID,
        model_app_id: cfg.APP_ID,
        model_id: cfg.MODEL_ID,
        model_version_id: cfg.MODEL_VERSION_ID,
        post_inputs_key_id: cfg.POST_INPUTS_KEY_ID,
        caller_user_id: cfg.CALLER_USER_ID,
      },
    },
  };
}

function check(name, response) {
  if (response.status.code !== 10000) {
    throw new Error(`${name} failed, status: ${response.status.description} ${response.status.details}`);
  }
  return response;
}

async function main() {
  const out = {};
  // Add Collector
  const added = check(
    "Post collectors",
    await call("PostCollectors", {
      user_app_id: userAppId,
      collectors: [collector(cfg.COLLECTOR_ID, cfg.COLLECTOR_DESCRIPTION)],
    }),
  );
  out.add = { code: added.status.code, ids: added.collectors.map((c) => c.id) };

  // Update Collector
  const patched = check(
    "Patch collectors",
    await call("PatchCollectors", {
      user_app_id: userAppId,
      action: "overwrite",
      collectors: [collector(cfg.COLLECTOR_ID, cfg.NEW_DESCRIPTION)],
    }),
  );
  out.update = { code: patched.status.code, description: patched.collectors[0].description };

  // List Collectors
  const listed = check("List collectors", await call("ListCollectors", { user_app_id: userAppId }));
  out.list = listed.collectors.map((c) => c.id).sort();

  // Get Collector
  const got = check(
    "Get collector",
    await call("GetCollector", { user_app_id: userAppId, collector_id: cfg.COLLECTOR_ID }),
  );
  const src = got.collector.collector_source.api_post_model_outputs_collector_source;
  out.get = {
    id: got.collector.id,
    description: got.collector.description,
    status: got.collector.status.code,
    model_version_id: src.model_version_id,
    caller_user_id: src.caller_user_id,
  };

  // Delete Collector (the page deletes two)
  check(
    "Post collectors",
    await call("PostCollectors", {
      user_app_id: userAppId,
      collectors: [collector(cfg.COLLECTOR_ID_2, "second")],
    }),
  );
  const deleted = check(
    "Delete collectors",
    await call("DeleteCollectors", {
      user_app_id: userAppId,
      ids: [cfg.COLLECTOR_ID, cfg.COLLECTOR_ID_2],
    }),
  );
  out.delete = deleted.status.code;
  const after = await call("ListCollectors", { user_app_id: userAppId });
  out.after_delete = after.collectors.map((c) => c.id);

  // Refusals come back as Clarifai statuses inside the response, not as gRPC errors.
  const missing = await call("GetCollector", { user_app_id: userAppId, collector_id: "nope" });
  out.missing = missing.status.code;
  const badAction = await call("PatchCollectors", {
    user_app_id: userAppId,
    action: "merge",
    collectors: [collector(cfg.COLLECTOR_ID, "x")],
  });
  out.bad_action = badAction.status.code;
  console.log(JSON.stringify(out));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
