"""Pictures: one *view* per kind of data decides how samples and diagnostics are drawn."""

from gankit.registry import Registry

VIEWS = Registry("view", {
    "toy1d": "gankit.plots.toy:Gaussian1DView",
    "toy2d": "gankit.plots.toy:Toy2DView",
    "unpaired": "gankit.plots.translation:TranslationView",
    "paired": "gankit.plots.translation:TranslationView",
    "image": "gankit.plots.images:ImageView",
    "text": "gankit.plots.text:TextView",
})
