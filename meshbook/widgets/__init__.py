"""Interactive exploration: an ipywidgets panel at the top of every runbook (`panel(rb)`).

In JupyterLab the panel shows the target, the scenario's toggles (sidecar mode, webhook and Vault
PERMISSIVE, failure policy, istioEnabled), a button per runbook step and one for all of them, the pods
live from a watch, the predicted connections (API server -> webhook, app -> Vault: verdict and reason
from the connectivity model, recomputed as toggles change) and the mTLS posture. In a headless run it is
inert: no widgets, no threads (the rule is in `meshbook.widgets.headless`).
"""

from meshbook.widgets.headless import ENV_PANEL, headless_reason
from meshbook.widgets.predict import LiveState, Prediction, predict, prediction_frame, read_live
from meshbook.widgets.steps import default_steps
from meshbook.widgets.toggles import Toggles
from meshbook.widgets.ui import InertPanel, Panel, panel

__all__ = [
    "ENV_PANEL",
    "InertPanel",
    "LiveState",
    "Panel",
    "Prediction",
    "Toggles",
    "default_steps",
    "headless_reason",
    "panel",
    "predict",
    "prediction_frame",
    "read_live",
]
