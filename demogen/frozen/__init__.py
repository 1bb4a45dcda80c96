"""The frozen predictor: the frozen coefficient files (resources/) and the competition's entry
point, complexity(model, ds, program_dir)."""
