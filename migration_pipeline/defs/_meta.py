"""What every definition in `defs/` shares for the catalog: who owns it.

One place, so that a change of team (or a second owner) is one edit; every asset and job
passes `owners=OWNERS`.
"""

OWNERS = ["team:migration"]
