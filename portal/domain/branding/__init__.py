"""A partner's words and brand: its own subject and text for each kind of
e-mail (templates.py, rendered in a sandbox, sandbox.py), and its logo and
colour (brand.py), shown in its e-mails and on its customers' pages. Both are
inherited down the tree: the nearest partner above a company that set one wins
(delivery.py reads them for many e-mails at once)."""
