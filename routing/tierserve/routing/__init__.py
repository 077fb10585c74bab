"""Tierserve's router: an OpenAI-compatible gateway in front of LLM deployments.

Layers, outermost first:

* ``cli`` / ``bench``: command-line entry points.
* ``app``: the app factory; the only place that builds dependencies (HTTP session,
  metrics registry, plugins) and wires them together.
* ``handlers``: HTTP handlers; thin, they validate the little they need and delegate.
* ``proxy``, ``failover``, ``tiering``, ``triton``: talking to backends.
* ``state``, ``admission``, ``auth``, ``abtest``, ``metrics``: runtime state.
* ``config``: the pydantic configuration model shared by the YAML file and the cluster
  watcher; both hand a :class:`~tierserve.core.routerconfig.RouterConfig` to
  :meth:`~tierserve.routing.app.Router.apply_config` to hot-swap routes.
* ``plugins``: pure decision logic (filters, scorers, pickers, classifiers, hashing);
  it imports no HTTP client so it can be unit-tested and reused anywhere.
"""
