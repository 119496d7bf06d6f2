"""What each kind's ``.status`` should say, built from plain values.

One module per kind. Pure: no Kopf, no Kubernetes client, the clock passed in.
Controllers decide when to write; these modules decide what is written.
"""
