"""Wire models of the sandbox's fake systems, one module per system (the routers in `routers/` speak them)."""
