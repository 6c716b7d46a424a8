"""The environment: the rules over K slots (:mod:`.core`), their one-slot view the single
env (:mod:`.single`), their K-slot view the vector env and lockstep copies
(:mod:`.vector`), and the Gymnasium ids (:mod:`.registration`)."""

from dvrl_env.envs.registration import ENV_IDS, register_envs
from dvrl_env.envs.single import DataValuationEnv
from dvrl_env.envs.vector import DataValuationVectorEnv, make_vector_env

__all__ = ["ENV_IDS", "DataValuationEnv", "DataValuationVectorEnv", "make_vector_env",
           "register_envs"]
