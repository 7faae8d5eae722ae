"""A Griffe extension for rnnbook's API reference (loaded by `tools/build_docs.py` through mkdocstrings).

With `force_inspection` Griffe reads the imported objects: methods added with fastcore's `@patch` are members of
their classes and the docstrings `rnnbook.argdocs.document` fills at import are the ones shown. This extension
adds two things:

- "Bases" name public classes: a private base (`_BuiltinRNN`, `RecurrentCell`, `BaseConv` ...) is replaced by the
  first class of its MRO that the public namespaces export (`LSTM` shows `RNN`, as Keras' reference would);
- a docstring's `Call arguments:` section (Keras' name; Google style does not know it) is rendered as a table
  like `Args:` instead of one run-on paragraph, and the `Args:` items lose their closing "Default: `x`." (the
  parameters table has a Default column, read from the signature);
- a class attribute holding a class (`cell_class = LSTMCell`) is not shown as a nested class, and an attribute
  whose docstring is only its value's type's (`int`'s) shows none.
"""
import importlib
import inspect
import re

import griffe

PUBLIC_MODULES = ('layers', 'models', 'losses', 'metrics', 'optimizers', 'callbacks', 'initializers',
                  'regularizers', 'constraints', 'activations', 'utils', 'saving', 'data', 'traces')


def _public_classes():
    "id(class) -> its public path (`rnnbook.layers.RNN`), the first public namespace exporting it."
    out = {}
    for m in PUBLIC_MODULES:
        try: mod = importlib.import_module(f'rnnbook.{m}')
        except Exception: continue
        for n in getattr(mod, '__all__', []):
            obj = getattr(mod, n, None)
            if inspect.isclass(obj) and not n.startswith('_'): out.setdefault(id(obj), f'rnnbook.{m}.{n}')
    return out


def public_bases(cls, public):
    "The public classes standing for `cls.__bases__`: each private base replaced by its first public ancestor."
    found = []
    for b in cls.__bases__:
        for k in b.__mro__:
            if k is object: break
            if id(k) in public:
                if public[id(k)] not in found: found.append(public[id(k)])
                break
    return found


_SECTION = re.compile(r'^(\s*)Call arguments:\s*$')
_ITEM = re.compile(r'^(\**\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$')


def call_arguments_table(doc):
    "`doc` with its `Call arguments:` block as an admonition holding a Markdown table (name, type, description)."
    lines, out, i = doc.splitlines(), [], 0
    while i < len(lines):
        m = _SECTION.match(lines[i])
        if not m:
            out.append(lines[i]); i += 1; continue
        base, i, items = len(m.group(1)), i + 1, []
        block = []
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > base):
            block.append(lines[i]); i += 1
        while block and not block[-1].strip(): block.pop()
        indent = min((len(l) - len(l.lstrip()) for l in block if l.strip()), default=base + 4)
        for l in block:
            if not l.strip(): continue
            it = _ITEM.match(l[indent:]) if len(l) - len(l.lstrip()) == indent else None
            if it: items.append([it.group(1), it.group(2) or '', it.group(3)])
            elif items: items[-1][2] += ' ' + l.strip()
            else: items.append(['', '', l.strip()])
        pad = ' ' * base
        out.append(f'{pad}Call arguments:')
        out.append(f'{pad}    | Name | Type | Description |')
        out.append(f'{pad}    | ---- | ---- | ----------- |')
        for name, typ, desc in items:
            cell = lambda s: s.replace('|', '\\|')
            out.append(f'{pad}    | {"`" + name + "`" if name else ""} | {cell(typ)} | {cell(desc)} |')
        out.append('')
    return '\n'.join(out)


_ARGS = re.compile(r'^(\s*)(Args|Arguments):\s*$')
_DEFAULT = re.compile(r'\s*Default: `[^`]*`\.\s*$')


def args_without_defaults(doc):
    "The `Args:` items without their closing 'Default: `x`.' (the table has a Default column, from the signature)."
    lines, out, inside, base = doc.splitlines(), [], False, 0
    for i, line in enumerate(lines):
        if (m := _ARGS.match(line)):
            inside, base = True, len(m.group(1))
        elif inside and line.strip() and len(line) - len(line.lstrip()) <= base:
            inside = False
        nxt = lines[i + 1] if i + 1 < len(lines) else ''
        item_ends = not nxt.strip() or len(nxt) - len(nxt.lstrip()) <= base + 4
        if inside and item_ends and _DEFAULT.search(line): line = _DEFAULT.sub('', line)
        out.append(line)
    return '\n'.join(out)


class RnnbookDocs(griffe.Extension):
    "Public bases, `Call arguments` tables, no nested classes or type docstrings (see the module's docstring)."

    def __init__(self):
        super().__init__()
        self._public = None

    def on_class_instance(self, *, node, cls, agent, **kwargs):
        runtime = getattr(node, 'obj', None)
        if not inspect.isclass(runtime) or not runtime.__module__.startswith('rnnbook'): return
        if self._public is None: self._public = _public_classes()
        bases = public_bases(runtime, self._public)
        cls.bases = [griffe.ExprName(p.rsplit('.', 1)[1], parent=p.rsplit('.', 1)[0]) for p in bases]

    def on_class_members(self, *, node, cls, agent, **kwargs):
        "A class attribute holding another class (`cell_class = LSTMCell`) is not a nested class: left out."
        runtime = getattr(node, 'obj', None)
        if not inspect.isclass(runtime): return
        for name in list(cls.members):
            value = runtime.__dict__.get(name)
            if inspect.isclass(value) and value.__qualname__ != f'{runtime.__qualname__}.{name}':
                del cls.members[name]

    def on_attribute_instance(self, *, node, attr, agent, **kwargs):
        "An attribute's value has no docstring of its own: `int`'s or a namedtuple's is not the attribute's."
        value = getattr(node, 'obj', None)
        if attr.docstring is None or inspect.isroutine(value) or isinstance(value, property): return
        own = type(value).__dict__.get('__doc__')
        if isinstance(own, str) and attr.docstring.value.strip() == inspect.cleandoc(own).strip():
            attr.docstring = None

    def on_instance(self, *, node, obj, agent, **kwargs):
        doc = obj.docstring
        if doc is None: return
        if 'Call arguments:' in doc.value: doc.value = call_arguments_table(doc.value)
        if 'Args:' in doc.value: doc.value = args_without_defaults(doc.value)
