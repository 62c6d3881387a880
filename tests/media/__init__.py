"""Real-media tests: the Janus driver in real WebRTC meetings.

What runs: a real Janus server (Debian ``janus``) with a configuration generated for the test
(``janus_server.py``: only VideoRoom, TextRoom and the HTTP transport; never ``/etc/janus``),
the bot's :class:`~summon.drivers.janus.JanusDriver`, scripted aiortc participants that speak
espeak-ng speech and show generated pictures (``participants.py``), and one real headless
Chromium joining through Debian's ``janus.js`` (``test_janus_chromium.py``).

Why a network namespace: WebRTC stacks (aiortc, Chromium, Janus) leave loopback addresses out of
their ICE candidates, so a call cannot run on 127.0.0.1. Each test creates a private namespace
``summon-<random>`` with a veth pair whose both ends live inside it (``netns.py``). Janus runs
in it under ``ip netns exec``; the test's own thread enters it with ``setns(2)`` for the test's
duration, so the driver, the participants, the page server and Chromium (started by that
thread) are all inside. No STUN/TURN anywhere; nothing leaves the namespace. The namespace is
deleted after each test, whatever happens.

How to run (as root — CI is root; otherwise the tests skip and say why)::

    apt-get install -y janus libjs-janus-gateway espeak-ng chromium
    .venv/bin/pip install aiortc playwright      # never `playwright install`: Debian's chromium
    scripts/test tests/media -m slow             # or: .venv/bin/pytest tests/media

The quick checks of the driver's pure pieces (speech detector, decoders, URL validation) are
not marked ``slow``; everything that starts Janus or Chromium is.
"""
