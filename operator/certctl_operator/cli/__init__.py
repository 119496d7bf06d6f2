"""``kubectl certctl``: the kubectl plugin for certctl-operator.

Installed as the console script ``kubectl-certctl``, so ``kubectl certctl
<command>`` finds it on ``PATH``. It talks to the API server with the user's
kubeconfig and context (the synchronous ``kubernetes`` client), never with the
operator's credentials. Commands: ``status``, ``inspect``, ``renew``,
``revoke``, ``requeue``, ``crl`` and ``check``; see ``docs/cli.md``.
"""
