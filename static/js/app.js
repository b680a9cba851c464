// Small progressive enhancements; every action also works without JavaScript.
(function () {
  "use strict";
  const narrow = window.matchMedia("(max-width: 720px)");

  function syncSidebarToggle() {
    const sidebar = document.getElementById("sidebar");
    const toggle = document.querySelector("[data-toggle-sidebar]");
    if (!sidebar || !toggle) return;
    const hidden = narrow.matches ? !sidebar.classList.contains("open") : sidebar.classList.contains("collapsed");
    toggle.setAttribute("aria-expanded", String(!hidden));
  }

  document.addEventListener("DOMContentLoaded", syncSidebarToggle);
  narrow.addEventListener("change", syncSidebarToggle);

  document.addEventListener("click", (event) => {
    const toggle = event.target.closest("[data-toggle-sidebar]");
    if (toggle) {
      const sidebar = document.getElementById("sidebar");
      if (sidebar) {
        // Small screens: hidden until opened. Wide screens: shown until collapsed.
        sidebar.classList.toggle(narrow.matches ? "open" : "collapsed");
        syncSidebarToggle();
      }
    }
    const copy = event.target.closest("[data-copy]");
    if (copy) {
      const field = document.querySelector(copy.dataset.copy);
      if (field) {
        field.select();
        const done = () => { copy.textContent = "Copied"; };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(field.value).then(done, () => document.execCommand("copy") && done());
        } else if (document.execCommand("copy")) {
          done();
        }
      }
    }
    const opener = event.target.closest("[data-open-dialog]");
    if (opener) {
      const dialog = document.getElementById(opener.dataset.openDialog);
      if (dialog && dialog.showModal) { event.preventDefault(); dialog.showModal(); }
    }
    const closer = event.target.closest("[data-close-dialog]");
    if (closer) {
      const dialog = closer.closest("dialog");
      if (dialog) { event.preventDefault(); dialog.close(); }
    }
  });

  // Keys page: ticking a custom scope selects the "Custom" preset.
  document.addEventListener("change", (event) => {
    if (event.target.matches("[data-custom-scope]") && event.target.checked) {
      const custom = document.querySelector('input[name="preset"][value="custom"]');
      if (custom) custom.checked = true;
    }
    if (event.target.matches('select[name="app"]') && event.target.value) {
      const appKey = document.querySelector('input[name="key_type"][value="app"]');
      if (appKey) appKey.checked = true;
    }
  });

})();
