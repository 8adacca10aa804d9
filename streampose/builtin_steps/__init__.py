"""Built-in pipeline steps, one family per module; each module registers its steps.

Every module here is imported when a pipeline is built (see
``streampose.step``), so keep module-level imports light.
"""
