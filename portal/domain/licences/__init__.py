"""Seats: who holds one, and giving them out ("Allocate Licenses").

A user's status is read from `licence_ends_at` (the end of their latest seat)
against the clock, so a batch's seats all turn expired the instant it ends,
with no job. Every change of seats takes the company's write lock, so no batch
ever holds more allocations than seats, however many managers click at once.

status: a user's licence status; tabs: the Licenses tabs, their counts and the
tally's invariant; batches: a company's batches; allocation: giving seats out
and freeing a leaver's; history: a user's seats.
"""
