"""Planning runs: what a run will cost, ready-made scenarios, and groups of runs to compare.

    estimate    time, disk and rows before Start, from the data and past runs' measured speeds
    presets     whole scenarios as one config (the Nike demo)
    sweep       a strategy shoot-out: the group file and its lifecycle through a JobManager
    comparison  a group's table, Pareto front and recommendation
    sweep_cli   `python -m core sweep`
"""
