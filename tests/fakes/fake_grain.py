"""A stand-in for the four `grain` calls Keras' `timeseries_dataset_from_array(format='grain')` makes, over plain
lists: tensorflow and grain are not installed here, and this lets Keras' own NumPy windowing run as the oracle."""


class GrainData:
    "What Keras' grain path calls on a dataset, over a plain list."
    def __init__(self, items): self.items = list(items)

    @classmethod
    def source(cls, items): return cls(items)

    def to_iter_dataset(self): return self

    def batch(self, n, batch_fn):
        return GrainData(batch_fn(self.items[i:i + n]) for i in range(0, len(self.items), n))

    def __iter__(self): return iter(self.items)


class Grain:
    "The `grain` module, as far as Keras uses it."
    MapDataset = GrainData

    class experimental:
        @staticmethod
        def ZipMapDataset(datasets): return GrainData(zip(*[d.items for d in datasets]))
