"""Mail that comes back: bounces (RFC 3464 delivery status notifications), automatic replies and people
writing back, read from the bounce and reply mailboxes.

    sources   where mail is read from (IMAP over TLS, a Maildir folder) and where it is moved once read
    dsn       a delivery status notification, per recipient
    classify  bounce, automatic reply or a person's reply; how hard a failure is
    store     the tables: what was read, replies, returned messages, per-wave holds
    reader    the loop ``serve`` runs: read, tie to the outbox row, act, move away
"""
