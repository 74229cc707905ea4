"""The job service: one JobManager per server process, training each run in a supervised child process.

    jobs           JobManager: the queue, the worker thread, snapshots for the pages
    child_process  the training child (and the standby one that waits with torch imported)
"""
