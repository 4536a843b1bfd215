"""The demo workload: a seeded plan of a music marketplace's life, driven through the real
command side (accounts, products, orders, the sagas) so every read model has data.

- `plan`: what happens, from a seeded RNG and nothing else (`make_plan`).
- `catalogue`: the names, titles, tags and prices the plan draws from.
- `watch`: follows the log to see each order and its sagas move.
- `workload`: the driver that turns a plan into commands (`run_workload`).
"""
