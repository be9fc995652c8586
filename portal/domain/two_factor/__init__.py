"""Second factors: an authenticator app (TOTP) with ten one-time recovery codes,
and passkeys; who must have one; and what happens when one is lost.

Modules: `totp` (codes and their one use), `recovery_codes`, `passkeys`,
`factors` (what a user has, enrolling and removing, a partner manager's reset)."""
