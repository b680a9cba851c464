// Small progressive enhancements; every action also works without JavaScript.
document.addEventListener("click", (event) => {
  const toggle = event.target.closest("[data-toggle-sidebar]");
  if (toggle) {
    const sidebar = document.getElementById("sidebar");
    if (sidebar) {
      const collapsed = sidebar.classList.toggle("collapsed");
      toggle.setAttribute("aria-expanded", String(!collapsed));
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
// htmx: confirm destructive actions with the native dialog (hx-confirm uses window.confirm).
