"""What makes a gin configuration invalid: `ConfigError`, and the rule for
the types of bound values.

This module imports neither gin nor TensorFlow: the launchers import it to
recognise a bad configuration (launch/errors.py) before any model code is
loaded. `dreamer_tf.config.parse` applies the rule to every binding of a
known configurable, so that a wrong value fails when the config is parsed,
naming the binding, the value and the type it needs, instead of deep in
the model (`RSSM.deter = 'big'` used to end in "not all arguments converted
during string formatting").

A bound value must have the type of its parameter's default:

  default              accepted values
  bool                 bool
  int                  int (not bool; 1e5 is a float: write 100000)
  float                int or float (not bool)
  str                  str
  tuple or list        tuple or list
  dict (any Mapping)   dict
  None or other        anything (the default does not tell)

None is refused where the default is one of the types above (an unset
value there would fail later), unless `EXTRA_TYPES` lists it. A gin
reference (`@name()`, `%MACRO`) is not checked: its value exists only when
the configurable is called.
"""
import collections.abc

# Parameters whose default does not show every type they accept:
# 'configurable.parameter' -> the further types.
EXTRA_TYPES = {
    'Agent.jit_compile': (bool,),  # 'auto', True or False.
}

# (types, what to call them in a message) for a default's type, in order.
_RULES = (
    (bool, (bool,), 'a bool (True or False)'),
    (int, (int,), 'an integer'),
    (float, (int, float), 'a number'),
    (str, (str,), "a string (quoted: 'text')"),
    ((tuple, list), (tuple, list), 'a tuple or list'),
    (collections.abc.Mapping, (dict,), 'a dict'),
)


class ConfigError(ValueError):
  """A gin configuration that cannot run: an unknown, ill-typed or ignored
  binding, a malformed value, or a bad seed. The message names the binding
  and the fix."""


def _rule(default):
  """(accepted types, their name) for a parameter's default, or None."""
  for kind, accepted, name in _RULES:
    if isinstance(default, kind):
      return accepted, name
  return None


def _accepts(accepted, value):
  if isinstance(value, bool) and bool not in accepted:
    return False  # bool is an int to Python, never to a config.
  return isinstance(value, accepted)


def _a(kind):
  """'a str', 'an int'."""
  return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def check_value(name, value, default):
  """Raises ConfigError unless `value` may be bound to parameter `name`
  ('configurable.parameter') whose default is `default` (module doc)."""
  rule = _rule(default)
  if rule is None:
    return
  accepted, wanted = rule
  extra = EXTRA_TYPES.get(name, ())
  if _accepts(accepted + extra, value):
    return
  wanted = ' or '.join([wanted] + [_a(t.__name__) for t in extra])
  what = 'None' if value is None else _a(type(value).__name__)
  if isinstance(default, collections.abc.Mapping):
    default = dict(default)  # Shown as gin writes it.
  fix = f'e.g. {name} = {default!r} (its default)'
  if isinstance(value, float) and accepted == (int,) and value.is_integer():
    fix = f'write it without a decimal point or exponent: {name} = {int(value)}'
  raise ConfigError(f'{name} = {value!r}: {name} takes {wanted}, not {what}; '
                    f'{fix}.')
