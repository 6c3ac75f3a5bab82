"""The papers' own synthetic signal models, to validate each estimator on its paper's
setting independently of the twin."""
