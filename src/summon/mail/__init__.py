"""Mail: bot mailboxes receive meeting invitations (SPEC §12).

``smtp.py`` is the built-in SMTP receiver, ``imap.py`` the poller for an existing mailbox,
``refresher.py`` the periodic pass that keeps recurring invitations scheduled as the window
moves, ``reply.py`` the optional iMIP REPLY to organizers. What a message means is decided in
``summon.domain.invites``; what it changes in ``summon.services.mailboxes``.
"""
