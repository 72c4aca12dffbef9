"""Pure rules of the collaboration: ids and naming, mentions, ranking, quota windows, verification
policy, statistics. No I/O; imports nothing of swarmlab.
"""
