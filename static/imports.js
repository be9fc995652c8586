// "Import Licence Renewal", made nicer; every part works without this file.
// - [data-dropzone]: drop a file anywhere on the card to put it in its file input.
// - form[data-autosubmit]: changing the e-mail column shows its preview at once.
"use strict";

(function () {
  document.addEventListener("dragover", function (event) {
    const zone = event.target instanceof Element && event.target.closest("[data-dropzone]");
    if (!zone) return;
    event.preventDefault();
    zone.classList.add("confirm");
  });

  document.addEventListener("dragleave", function (event) {
    const zone = event.target instanceof Element && event.target.closest("[data-dropzone]");
    if (zone && !zone.contains(event.relatedTarget)) zone.classList.remove("confirm");
  });

  document.addEventListener("drop", function (event) {
    const zone = event.target instanceof Element && event.target.closest("[data-dropzone]");
    if (!zone || !event.dataTransfer || !event.dataTransfer.files.length) return;
    event.preventDefault();
    zone.classList.remove("confirm");
    const input = zone.querySelector("input[type=file]");
    if (!input) return;
    input.files = event.dataTransfer.files;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  });

  document.addEventListener("change", function (event) {
    const target = event.target;
    if (!(target instanceof Element)) return;
    const form = target.closest("form[data-autosubmit]");
    if (form && target.matches("select")) form.requestSubmit();
  });
})();
