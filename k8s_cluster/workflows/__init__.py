"""The suite's workflows (mapped in blueprints/types/base.yaml)."""
