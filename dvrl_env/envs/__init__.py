"""The environment: the single env (:mod:`.single`), the batched vector env
(:mod:`.batched`), lockstep copies (:mod:`.vector`) and the Gymnasium ids
(:mod:`.registration`)."""

from dvrl_env.envs.batched import DataValuationVectorEnv
from dvrl_env.envs.registration import ENV_IDS, register_envs
from dvrl_env.envs.single import DataValuationEnv
from dvrl_env.envs.vector import make_vector_env

__all__ = ["ENV_IDS", "DataValuationEnv", "DataValuationVectorEnv", "make_vector_env",
           "register_envs"]
