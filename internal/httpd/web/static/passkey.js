// Passkey ceremonies for Ferry's pages. The server keeps each ceremony's
// state; this module only carries the options to the browser's WebAuthn API
// and the authenticator's answer back, as form fields (with the page's CSRF
// token) so the same checks apply as to every form. data-base="/admin" on
// the element runs the ceremony against the admin listener's routes;
// data-finish="page" on a registration form submits its last step as a page.

const b64 = {
  decode(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(s + "===".slice((s.length + 3) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0)).buffer;
  },
  encode(buf) {
    let bin = "";
    for (const b of new Uint8Array(buf)) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  },
};

async function post(url, fields) {
  const res = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields),
  });
  let body = {};
  try {
    body = await res.json();
  } catch {
    body = { error: "Ferry could not complete the request (" + res.status + ")." };
  }
  if (!res.ok) throw new Error(body.error || "The passkey was not accepted.");
  return body;
}

// submit posts fields as an ordinary form, so the server's answer is the
// next page (the account page with new recovery codes, shown once). The
// returned promise never settles: the page is going away.
function submit(url, fields) {
  const f = document.createElement("form");
  f.method = "post";
  f.action = url;
  f.hidden = true;
  for (const [k, v] of Object.entries(fields)) {
    const i = document.createElement("input");
    i.type = "hidden";
    i.name = k;
    i.value = v;
    f.append(i);
  }
  document.body.append(f);
  f.submit();
  return new Promise(() => {});
}

function creationOptions(o) {
  const pk = o.publicKey;
  pk.challenge = b64.decode(pk.challenge);
  pk.user.id = b64.decode(pk.user.id);
  for (const c of pk.excludeCredentials || []) c.id = b64.decode(c.id);
  return { publicKey: pk };
}

function requestOptions(o) {
  const pk = o.publicKey;
  pk.challenge = b64.decode(pk.challenge);
  for (const c of pk.allowCredentials || []) c.id = b64.decode(c.id);
  return { publicKey: pk };
}

function credentialJSON(cred) {
  const r = cred.response;
  const out = {
    id: cred.id,
    rawId: b64.encode(cred.rawId),
    type: cred.type,
    authenticatorAttachment: cred.authenticatorAttachment || undefined,
    clientExtensionResults: cred.getClientExtensionResults(),
    response: { clientDataJSON: b64.encode(r.clientDataJSON) },
  };
  if (r.attestationObject) {
    out.response.attestationObject = b64.encode(r.attestationObject);
    out.response.transports = r.getTransports ? r.getTransports() : [];
  } else {
    out.response.authenticatorData = b64.encode(r.authenticatorData);
    out.response.signature = b64.encode(r.signature);
    if (r.userHandle) out.response.userHandle = b64.encode(r.userHandle);
  }
  return JSON.stringify(out);
}

const ceremonies = {
  async login(el) {
    const csrf = el.dataset.csrf || "";
    const base = el.dataset.base || "";
    const next = new URLSearchParams(location.search).get("next") || "/";
    const opts = await post(base + "/login/passkey/begin", { csrf });
    const cred = await navigator.credentials.get(requestOptions(opts));
    return post(base + "/login/passkey/finish", { csrf, next, credential: credentialJSON(cred) });
  },
  async mfa(el) {
    const csrf = el.dataset.csrf || "";
    const base = el.dataset.base || "";
    const opts = await post(base + "/login/mfa/passkey/begin", { csrf });
    const cred = await navigator.credentials.get(requestOptions(opts));
    return post(base + "/login/mfa/passkey/finish", { csrf, credential: credentialJSON(cred) });
  },
  async register(el) {
    const csrf = el.dataset.csrf || "";
    const base = el.dataset.base || "";
    const name = el.querySelector("input[name=name]").value;
    const opts = await post(base + "/account/passkeys/begin", { csrf });
    const cred = await navigator.credentials.create(creationOptions(opts));
    const fields = { csrf, name, credential: credentialJSON(cred) };
    // data-finish="page": the answer is a page (it may show recovery codes).
    if (el.dataset.finish === "page") return submit(base + "/account/passkeys/finish", { ...fields, page: "1" });
    return post(base + "/account/passkeys/finish", fields);
  },
};

function showError(el, msg) {
  const p = el.parentElement.parentElement.querySelector("[data-passkey-error]") || document.querySelector("[data-passkey-error]");
  if (p) {
    p.textContent = msg;
    p.hidden = false;
  }
}

for (const el of document.querySelectorAll("[data-passkey]")) {
  if (!window.PublicKeyCredential) {
    el.hidden = true;
    continue;
  }
  const run = async (ev) => {
    ev.preventDefault();
    try {
      const res = await ceremonies[el.dataset.passkey](el);
      location.assign(res.redirect || "/");
    } catch (err) {
      showError(el, err.name === "NotAllowedError" ? "The passkey request was cancelled or timed out." : err.message);
    }
  };
  el.addEventListener(el.tagName === "FORM" ? "submit" : "click", run);
}
