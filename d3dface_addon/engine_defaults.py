"""The engine's user-facing defaults and limits, as the add-on's properties, operators and
``api`` use them. The add-on never imports the engine (Blender's Python does not run torch),
so these are copies of ``d3dface.config``; tests/test_config.py checks that they agree."""

SAMPLES = 8  # d3dface.config.DEFAULT_SAMPLES
MAX_SAMPLES = 64  # d3dface.config.MAX_SAMPLES
SEED = 0  # d3dface.config.DEFAULT_SEED
DIVERSITY = 1.0  # DiversifySettings.diversity
MASK = "auto"  # MaskSettings.occlusion
INTERPOLATION_STEPS = 5  # d3dface.config.INTERPOLATION_STEPS
