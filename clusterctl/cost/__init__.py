"""The cost model (pure: ``model.py``) and, later, the hardware inventory."""
