// Passkeys: <form data-passkey="create|get" data-options="…">. The options are the
// server's JSON (in an attribute, so only ever data); the browser's WebAuthn API
// makes or uses the credential, whose JSON goes in the form's `credential` field,
// and the form is sent as any other. Without this script (or WebAuthn) the form
// says so instead of sending nothing.
"use strict";

(function () {
  document.addEventListener("submit", async function (event) {
    const form = event.target.closest("form[data-passkey]");
    if (!form) return;
    event.preventDefault();
    const status = form.querySelector("[data-passkey-status]");
    if (!window.PublicKeyCredential || !PublicKeyCredential.parseCreationOptionsFromJSON) {
      if (status) status.textContent = "This browser cannot use passkeys.";
      return;
    }
    const options = JSON.parse(form.dataset.options);
    try {
      const credential =
        form.dataset.passkey === "create"
          ? await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) })
          : await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
      form.querySelector("input[name=credential]").value = JSON.stringify(credential.toJSON());
      form.submit();
    } catch (error) {
      if (status) status.textContent = "The passkey was not used (" + error.name + "). Try again.";
    }
  });
})();
