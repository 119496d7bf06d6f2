"""NotificationChannel and NotificationEvent: reliable delivery with retries and a dead-letter queue.

How an event moves (the rules themselves are in
:mod:`certctl_operator.policy.notification`, the status they lead to in
:mod:`certctl_operator.status.notifications`):

* :mod:`.watch`: watch events only keep a small record per event (its name,
  uid, resourceVersion, phase and ``sentAt``, never the body; see
  :mod:`.runtime`) and put the event on one keyed work queue
  (:class:`~certctl_operator.workqueue.WorkQueue`) with a due-time scheduler.
* :mod:`.schedule`: a new, Pending or requeued event is due at once, a
  Failed one at ``status.nextRetryAt``, a Sent one when its retention has
  passed (it is deleted then), a Dead one never. Ten thousand events waiting
  for their next attempt are ten thousand heap entries and one sleeping
  scheduler task, and an attempt starts at its scheduled time rather than at
  the next tick of a timer.
* :mod:`.deliver`: a worker takes the event under a per-event lock and reads
  it again from the API server: the decision is taken on that fresh copy,
  never on a possibly stale watch body. The outcome, the next schedule, the
  conditions and the attempt history are written in one status patch
  (:mod:`.record`), whose watch event schedules the next attempt.
  :mod:`.announce` posts the Kubernetes Events of the transitions.
* Requeue: the ``certctl.io/requeue`` annotation set to a value other than
  ``status.lastHandledRequeue`` resets the delivery in one status write
  (also storing the handled value, so it is level-triggered and survives
  restarts), then delivers again.
* The ``certctl.io/phase=dead`` label is kept in step with the phase by the
  watch-event handler, which also keeps the per-phase counts behind the
  gauges (:mod:`.metrics`), one transition at a time.
* :mod:`.channels`: channels that are not Ready are checked again on the
  same queue every ``notificationRetryInterval`` (and at once when a Secret
  they use changes), until they are.

Nothing that decides when to try again lives only in memory: after a restart
Kopf's initial listing rebuilds every schedule from the status, and an
unchanged object costs no write. The queue runs while the operator runs
(:mod:`.startup`), which with leader election is only while it holds the
Lease. On shutdown no new attempt starts; one on the wire gets
:data:`~.deliver.DELIVERY_STOP_GRACE` to finish and be recorded, else it is
cancelled unrecorded and made again after the restart.

Importing this package registers its Kopf handlers.
"""

from certctl_operator.controllers.notifications import startup, watch  # noqa: F401
