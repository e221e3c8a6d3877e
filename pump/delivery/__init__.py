"""Delivery: fan batches out to pumps, retry, dead-letter, park, and acknowledge.

A batch flows one way — source → fan-out → a worker per pump → acknowledger → source::

    RedisSource ──claim──▶ Intake (decode) ──Batch──▶ Fanout ──offer──▶ PumpWorker ──SinkBatch──▶ sink
         ▲                     │ undecodable                            │  │ gave up
         │                     ▼                                         │  ▼
         │                 DeadLetters ◀─────────────────────────────────┼──┘
         └──── ack / mark_done / park ◀──── Acknowledger ◀── finished / park

* ``fanout.py``     ``Intake``: claim → decode → a tracked ``Batch`` (gateway lists, and each
                    pump's backlog as its ``Backlog``); ``Fanout``: the claim loop, offering every
                    pump its share
* ``worker.py``     one per pump: its bounded queue, timeout, retries, batch splitting, parking;
                    it knows its sink, its ``Backlog``, the acknowledger and the dead letters only
* ``ack.py``        which pumps still owe a batch; acknowledges it when none does; owns the
                    in-flight window (``max_batches_in_flight``, and ``max_memory`` bytes)
* ``memory.py``     the window's byte budget: claims sized to the room left, paused when full
* ``deadletter.py`` ``DeadLetters``, the one writer of dead-letter lists, and ``pump deadletter``
* ``batch.py``      ``Batch``: a claim after decoding (the one object passed around)
* ``retry.py``      backoff with full jitter and the give-up rules
* ``clock.py``      the time the rules read (injectable: the unit tests never wait)
* ``tasks.py``      bounded, interruptible waits on tasks, for a stop that can never hang
"""
