"""Fleet writes. Every function is keyword-only, authorizes at the miner's site, and audits."""
