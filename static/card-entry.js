/* Card entry on the billing pages: the card goes to the processor from the browser,
   and the billing form carries only the payment-method id it hands back
   (input name="payment_method"). No card number ever reaches a billing route.
   - test processor: its own card page in a frame posts the token here (postMessage);
   - Stripe: Elements, and a SetupIntent confirmed by Stripe.js when the form is sent. */
(function () {
  "use strict";

  function show(entry, selector, message) {
    var el = entry.querySelector(selector);
    if (!el) return;
    el.textContent = message || "";
    el.hidden = !message;
  }

  // The test processor's frame says which token it handed out.
  window.addEventListener("message", function (event) {
    if (event.origin !== window.location.origin || !event.data || event.data.kind !== "test-processor-card") return;
    document.querySelectorAll('[data-card-entry="test"]').forEach(function (entry) {
      var frame = entry.querySelector("iframe");
      if (frame && frame.contentWindow !== event.source) return;
      entry.querySelector('input[name="payment_method"]').value = event.data.token;
      show(entry, "[data-card-ready]", event.data.label + ": ready to use.");
      show(entry, "[data-card-error]", "");
    });
  });

  // Test processor: a billing form sent before its frame handed a token would only be refused.
  function guardTest(entry) {
    var form = entry.closest("form");
    if (!form) return;
    form.addEventListener("submit", function (event) {
      if (entry.querySelector('input[name="payment_method"]').value) return;
      event.preventDefault();
      show(entry, "[data-card-error]", "Enter the card above and press “Use this card” first.");
    });
  }

  function mountStripe(entry) {
    if (typeof window.Stripe !== "function") {
      show(entry, "[data-card-error]", "The card form could not load: reload the page.");
      return;
    }
    var stripe = window.Stripe(entry.dataset.publishableKey);
    var card = stripe.elements().create("card");
    card.mount(entry.querySelector("[data-card-element]"));
    var form = entry.closest("form");
    var sending = false;
    form.addEventListener("submit", function (event) {
      var field = entry.querySelector('input[name="payment_method"]');
      if (field.value || sending) return;
      event.preventDefault();
      sending = true;
      stripe
        .confirmCardSetup(entry.dataset.clientSecret, { payment_method: { card: card } })
        .then(function (result) {
          sending = false;
          if (result.error) {
            show(entry, "[data-card-error]", result.error.message || "Your card was declined.");
            return;
          }
          field.value = result.setupIntent.payment_method;
          form.submit();
        });
    });
  }

  // A payment the bank held back: Stripe.js asks the bank (3-D Secure), then the form tells the portal.
  function confirmPayment(form) {
    if (typeof window.Stripe !== "function" || !form.dataset.clientSecret) return;
    var stripe = window.Stripe(form.dataset.publishableKey);
    var confirmed = false;
    form.addEventListener("submit", function (event) {
      if (confirmed) return;
      event.preventDefault();
      stripe.confirmCardPayment(form.dataset.clientSecret).then(function (result) {
        if (result.error) {
          show(form, "[data-card-error]", result.error.message || "Your bank did not confirm the payment.");
          return;
        }
        confirmed = true;
        form.submit();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll('[data-card-entry="stripe"]').forEach(mountStripe);
    document.querySelectorAll('[data-card-entry="test"]').forEach(guardTest);
    document.querySelectorAll("form[data-confirm-payment]").forEach(confirmPayment);
  });
})();
