"""agentracer.trainer: GRPO training of a tracer model on verl.

Modules (only ``cpu_loop``, ``grpo`` and ``verl_policy_loss`` need torch; ``verl_policy_loss`` needs verl):

- ``reward``: the paper's multi-granularity reward, ``compute_score`` as verl calls it.
- ``data``: labelled trajectories → verl RL Parquet (``agentracer train prepare``).
- ``schedule``: the clipping range over training steps (linear or cosine, eps_max → eps_min).
- ``grpo``: KL-free GRPO in plain PyTorch (group advantages, clipped surrogate): the reference.
- ``verl_policy_loss``: that loss with the schedule, registered in verl's policy-loss registry.
- ``launch``: the paper config → verl ``main_ppo`` overrides and pre-launch checks (``agentracer train run``).
- ``cpu_loop``: a small GRPO loop for CPU tests.
"""
