"""Fleet pages: server-rendered, htmx where a fragment changes. Reads go through ``restrict()``
in the switcher's org, with the same FilterSet and selectors as the API; writes go through the
same services (``miner_*``, ``job_*``), which authorize miner by miner."""
