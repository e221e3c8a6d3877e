"""Delivery: fan batches out to pumps, retry, dead-letter, park, and acknowledge.

* ``fanout.py``  the claim loop: claim → decode → offer each pump its view of the batch
* ``worker.py``  one per pump: its bounded queue, timeout, retries, batch splitting, backlog
* ``ack.py``     which pumps still owe a batch; acknowledges it when none does
* ``retry.py``   backoff with full jitter and the give-up rules
* ``tasks.py``   bounded, interruptible waits on tasks, for a stop that can never hang
* ``deadletter.py`` dead-letter entries and the ``pump deadletter`` operations
"""
