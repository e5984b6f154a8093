"""Achievement success rates and the Crafter score (Hafner, 2021).

Episodes record their achievement counts as `log/achievement_<name>` (see
`dreamer_tf/envs/crafter.py`; the training loop and evaluation write them
into each episode's record in scores.jsonl). The success rate of an
achievement is the percentage of episodes that unlocked it at least once;
the Crafter score is their geometric mean shifted by one percent:

  S = exp(1/N sum_i ln(1 + s_i)) - 1,  s_i in [0, 100],

so it lies in [0, 100] and rewards rare achievements more than frequent ones.
"""
import numpy as np

PREFIX = 'log/achievement_'


def success_rates(records):
  """{achievement: percent of episodes with count >= 1} over `records`.

  records: episode dicts (scores.jsonl lines) carrying `log/achievement_*`
  keys; records without them are skipped. Empty if none has them.
  """
  counts = [{k[len(PREFIX):]: v for k, v in r.items() if k.startswith(PREFIX)}
            for r in records]
  counts = [c for c in counts if c]
  if not counts:
    return {}
  names = sorted(set().union(*counts))
  missing = [n for n in names if any(n not in c for c in counts)]
  if missing:
    raise ValueError(f'Episodes disagree on the achievements {missing}: '
                     'mixed envs in one set of records?')
  return {n: 100.0 * float(np.mean([c[n] >= 1 for c in counts]))
          for n in names}


def crafter_score(rates):
  """S = exp(mean ln(1 + s_i)) - 1 of success rates s_i in percent."""
  if not rates:
    raise ValueError('No achievement success rates: the episodes carry no '
                     f'{PREFIX}* entries (is this a Crafter run?).')
  s = np.asarray(list(rates.values()), np.float64)
  if (s < 0).any() or (s > 100).any():
    raise ValueError(f'Success rates must be percentages in [0, 100]: {rates}')
  return float(np.exp(np.mean(np.log1p(s))) - 1.0)

