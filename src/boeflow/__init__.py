"""boeflow: the Spanish BOE turned into searchable, summarised, translated, reviewed digests."""

__version__ = "0.1.0"

ATTRIBUTION = "Basado en datos de la Agencia Estatal Boletín Oficial del Estado"
