"""Single sign-on with OpenID Connect, per partner.

- `settings`: a partner's provider (issuer, client, e-mail domains, choices), and
  which partner an address's domain belongs to.
- `provider`: the provider's discovery document and keys, fetched with httpx and
  kept by a `ProviderDirectory` the caller hands in (no module state).
- `flow`: one sign-in: `begin` (state, nonce and PKCE verifier kept once in
  `sso_attempt`) and `complete` (the code exchanged with authlib, the ID token
  checked: signature by the provider's keys, issuer, audience, expiry, nonce),
  then the manager it names.

Decisions:

- An address's domain picks the provider; the ID token's e-mail must be of one of
  the partner's domains and belong to a manager under the partner's wing (its
  staff, its sub-partners', its customers' managers), never another partner's.
- Each attempt is taken once, by one atomic update: the same answer arriving
  again (a replayed code, state or ID token) is refused.
- The second factor: the partner chooses. By default the portal still asks its
  own second factor where the partner requires one (the provider's MFA is not
  visible to it); with "trust the provider's MFA" an SSO sign-in is complete.
"""
