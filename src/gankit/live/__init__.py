"""The live view: ``gankit train PRESET --live`` serves a page on 127.0.0.1 that shows the
running trainer (samples over the data, the critic's heat map, G's warping of a latent grid,
gradient arrows on the fakes, losses, D(x)/D(G(z)) and mode metrics) and drives it (play,
pause, one D or G update, slow motion, learning rates, k, the objective, a target drawn by
clicking).

* ``control``: ``LiveControl``, polled by ``Trainer.fit`` between steps (``trainer.control``);
* ``frames``: what the page draws, from the capabilities the run's figures use;
* ``server``: the aiohttp server (optional extra ``gankit[live]``) and its security rules;
* ``session``: ``Live``, which ``gankit.api.train(..., live=...)`` attaches to a run;
* ``static/``: the page, its script and style (no network: nothing is fetched from a CDN).
"""
