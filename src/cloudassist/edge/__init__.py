"""What any peer can hold of a face: connections, time, and failed attempts.

    budget.py     how many connections each face may hold, from the process's open-file limit
    guard.py      one face's connections: the cap, and the idle connection that gives way when it is full
    protocols.py  uvicorn's protocols with a read deadline, the guard's bookkeeping and our own TLS handshake
    throttle.py   failed authentications per source address (token buckets, in memory)
    tally.py      events counted and logged at most once per interval, never once per event
    loop.py       the event loop's handler for accept() errors
"""
