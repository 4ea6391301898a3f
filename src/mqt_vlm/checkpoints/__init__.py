"""Reading and converting checkpoints in other layouts (the released MQT-LLaVA)."""
