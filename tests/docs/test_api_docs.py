"""The API docstrings (issue 17): every public class and function describes each of its arguments, and every
example in a docstring runs.

Public means: the classes and functions in the `__all__` of the namespaces a user imports from (`MODULES`) and the
ones `import rnnbook as rb` gives directly (`rb.trace`, `rb.Sequential` ...), each object once. An argument is
described when the docstring's Google-style `Args:` section has a line for it (`rnnbook.argdocs.undocumented_args`,
the check `rnnbook.argdocs.document` makes at import for the objects it fills). An example is a fenced ```python
block in an `Example:` or `Examples:` section; it runs in a fresh namespace holding `np` and `rb` only, in a
temporary working directory.
"""
import importlib
import inspect
import os
import re
import textwrap

import pytest

MODULES = ('layers', 'models', 'losses', 'metrics', 'optimizers', 'callbacks', 'initializers', 'regularizers',
           'constraints', 'activations', 'utils', 'saving', 'data', 'traces', 'views', 'gate_view', 'mask_view',
           'state_view', 'bidirectional_view', 'gradient_view')


def _is_api(obj):
    return (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(obj, '__module__', '').startswith('rnnbook')


def public_objects():
    "`{'rnnbook.layers.LSTM': LSTM, ...}`: each public class and function once, under its first public name."
    import rnnbook
    out, seen = {}, set()
    names = [(f'rnnbook.{m}', importlib.import_module(f'rnnbook.{m}')) for m in MODULES]
    for path, mod in names:
        for n in getattr(mod, '__all__', []):
            obj = getattr(mod, n, None)
            if _is_api(obj) and id(obj) not in seen:
                seen.add(id(obj)); out[f'{path}.{n}'] = obj
    for n in dir(rnnbook):
        obj = getattr(rnnbook, n)
        if not n.startswith('_') and _is_api(obj) and id(obj) not in seen:
            seen.add(id(obj)); out[f'rnnbook.{n}'] = obj
    return out


def missing_args(name, obj):
    "None, or a message naming `obj` and the arguments its docstring's `Args:` section leaves out."
    from rnnbook.argdocs import undocumented_args
    missing = undocumented_args(obj)
    if not missing: return None
    sig = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
    return (f"{name}{sig}: the docstring's `Args:` section does not describe {missing} "
            f"(add `name (type): meaning.` lines, or fill it with rnnbook.argdocs.document)")


OBJECTS = public_objects()


@pytest.mark.parametrize('name', sorted(OBJECTS))
def test_every_argument_described(name):
    message = missing_args(name, OBJECTS[name])
    assert message is None, message


def test_the_check_catches_a_missing_argument():
    "The check above names the object and the argument a docstring leaves out, and passes a complete one."
    def step(x, units, scale=1.0):
        """One step.

        Args:
            x (array): Inputs.
            units (int): Units.
        """
    message = missing_args('step', step)
    assert message is not None and 'step' in message and "['scale']" in message, message

    def full(x, *args, **kwargs):
        """All described.

        Args:
            x (array): Inputs.
            *args: More inputs.
            **kwargs: Options.
        """
    assert missing_args('full', full) is None

    class Cell:
        """A cell.

        Args:
            units (int): Units.
        """
        def __init__(self, units, activation='tanh'): pass
    assert "['activation']" in missing_args('Cell', Cell)


# ----------------------------------------------------------------------------------------------- examples
_EXAMPLES = re.compile(r'^(Examples?):\s*$')
_BLOCK = re.compile(r'^```python\s*\n(.*?)^```\s*$', re.S | re.M)


def examples(doc):
    "The ```python blocks of the `Example:`/`Examples:` sections of docstring `doc`, dedented."
    lines, out, i = inspect.cleandoc(doc or '').splitlines(), [], 0
    while i < len(lines):
        if not _EXAMPLES.match(lines[i]): i += 1; continue
        i += 1
        section = []
        while i < len(lines) and (not lines[i].strip() or lines[i][0].isspace()):
            section.append(lines[i]); i += 1
        out += [textwrap.dedent(b) for b in _BLOCK.findall(textwrap.dedent('\n'.join(section)) + '\n')]
    return out


def _documented():
    "Each public object, and each public method its class defines, with the docstring it shows."
    for name, obj in OBJECTS.items():
        yield name, obj
        if inspect.isclass(obj):
            for k, v in vars(obj).items():
                f = v.fget if isinstance(v, property) else getattr(v, '__func__', v)
                if not k.startswith('_') and callable(f) and getattr(f, '__doc__', None):
                    yield f'{name}.{k}', f


EXAMPLE_CASES = [(f'{name}-{k}', code) for name, obj in _documented()
                 for k, code in enumerate(examples(getattr(obj, '__doc__', None)))]


def test_examples_found_in_a_docstring():
    "The extraction finds a fenced block under `Example:` (and none under other sections)."
    doc = '''Summary.

    Args:
        x (int): Not an example:
            ```python
            raise AssertionError
            ```

    Example:
        ```python
        y = 1 + 1
        assert y == 2
        ```
    '''
    assert examples(doc) == ['y = 1 + 1\nassert y == 2\n']


@pytest.fixture
def kept_globals(monkeypatch, tmp_path):
    "An example runs in a temporary folder; the default dtype and the random streams it may set are put back."
    import numpy as np
    from rnnbook import backend
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('MPLBACKEND', 'Agg')
    state = (backend.floatx(), backend._global_rng, np.random.get_state())
    yield
    backend.set_floatx(state[0])
    backend._global_rng = state[1]
    np.random.set_state(state[2])


@pytest.mark.parametrize('code', [c for _, c in EXAMPLE_CASES], ids=[n for n, _ in EXAMPLE_CASES])
def test_docstring_example_runs(code, kept_globals):
    import numpy as np
    import rnnbook as rb
    exec(compile(code, '<docstring example>', 'exec'), {'np': np, 'rb': rb, '__name__': '__example__'})
