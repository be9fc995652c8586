/* The test processor's card page, in a frame of a billing page: once the card is
   taken, its token goes to the page that framed it (same origin only), which puts
   it in the billing form. The card itself never leaves this frame's own form. */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var handed = document.querySelector("[data-token]");
    if (!handed || window.parent === window) return;
    window.parent.postMessage(
      { kind: "test-processor-card", token: handed.dataset.token, label: handed.dataset.label },
      window.location.origin
    );
  });
})();
