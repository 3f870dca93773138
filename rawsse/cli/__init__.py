"""The command line: ``python -m rawsse`` (:mod:`.main`), ``--workers``
(:mod:`.workers`), ``probe`` (:mod:`.probe`), the demo producers and page
(:mod:`.demo`) and the log formats (:mod:`.logs`)."""
