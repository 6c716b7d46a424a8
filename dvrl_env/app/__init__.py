"""The application above the library and ``agents``: the ``dvrl`` command line
(:mod:`.cli`), its run directories (:mod:`.runs`) and their report (:mod:`.report`),
``find_label_issues`` (:mod:`.find`) and ``dvrl bench`` (:mod:`.bench`). Nothing in
``dvrl_env``'s library (data, predictors, envs, evaluation) or in ``agents`` imports
it (tests/test_layers.py)."""
