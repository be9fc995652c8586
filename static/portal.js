// The portal's few behaviours, read from data- attributes: the Content-Security-Policy
// (script-src 'self') forbids inline handlers, and text in an attribute is only ever
// text here, never code. Listeners sit on the document, so content htmx swaps in
// later works too. Every page works without this file; it only makes them nicer.
"use strict";

(function () {
  // <form data-confirm="Deactivate Eve?">: ask before a destructive post.
  document.addEventListener(
    "submit",
    function (event) {
      const form = event.target.closest("form[data-confirm]");
      if (form && !window.confirm(form.dataset.confirm)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true,
  );

  // An error shown in #error-region (by the error handlers' HX-Retarget) is about
  // the last request: the next one starts without it.
  document.addEventListener("htmx:beforeRequest", function () {
    const region = document.getElementById("error-region");
    if (region) region.replaceChildren();
  });

  // <input data-select-on-click>: a link or key to copy, selected in one click,
  // or on reaching it with Tab.
  function selectCopyField(event) {
    const target = event.target;
    if (target instanceof HTMLInputElement && target.matches("[data-select-on-click]")) target.select();
  }
  document.addEventListener("focusin", selectCopyField);

  document.addEventListener("click", function (event) {
    selectCopyField(event);
    const target = event.target;
    if (!(target instanceof Element)) return;

    // <a data-dismiss=".confirm" href="…">: remove the enclosing box instead of
    // following the link (which, without this script, leads back to the list).
    const dismiss = target.closest("[data-dismiss]");
    if (dismiss) {
      const box = dismiss.closest(dismiss.dataset.dismiss);
      if (box) {
        event.preventDefault();
        box.remove();
      }
    }

    // <button data-remove-filter>: drop one "Add Filter" field and list again.
    const remove = target.closest("[data-remove-filter]");
    if (remove) {
      const form = remove.closest("form");
      remove.closest(".filter").remove();
      if (form) form.requestSubmit();
    }

    // <button data-close-menu> inside a <details> menu: close it once chosen.
    const item = target.closest("[data-close-menu]");
    if (item) {
      const menu = item.closest("details");
      if (menu) menu.open = false;
    }
  });
})();
