"""The offline stage: training reference models, building feature tables, fitting regressions.

Installed as demogen_fit. It imports demogen; demogen's shipped modules never import it."""
