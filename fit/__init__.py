"""The offline stage: training reference models, building feature tables, fitting regressions.

fit imports demogen; demogen's shipped modules never import fit."""
