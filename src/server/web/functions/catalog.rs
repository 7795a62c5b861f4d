//! The functions carbyne evaluates, described as graphite-web's
//! `/functions` describes them (name, group, parameters with their types,
//! defaults and options), so that Grafana's function editor offers them.

use serde_json::{json, Map, Value};

/// One parameter, in graphite-web's terms (`kind` is its type name).
pub struct P {
    pub name: &'static str,
    pub kind: &'static str,
    pub required: bool,
    /// The default as JSON text.
    pub default: Option<&'static str>,
    pub multiple: bool,
}

/// (name, group, parameters) of every function carbyne implements.
pub const CATALOG: &[(&str, &str, &[P])] = &[
    (
        "absolute",
        "Transform",
        &[P {
            name: "seriesList",
            kind: "seriesList",
            required: true,
            default: None,
            multiple: false,
        }],
    ),
    (
        "aggregate",
        "Combine",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "func",
                kind: "aggFunc",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "xFilesFactor",
                kind: "float",
                required: false,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "aggregateWithWildcards",
        "Combine",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "func",
                kind: "aggFunc",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "position",
                kind: "node",
                required: false,
                default: None,
                multiple: true,
            },
        ],
    ),
    (
        "alias",
        "Alias",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "newName",
                kind: "string",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "aliasByMetric",
        "Alias",
        &[P {
            name: "seriesList",
            kind: "seriesList",
            required: true,
            default: None,
            multiple: false,
        }],
    ),
    (
        "aliasByNode",
        "Alias",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "nodes",
                kind: "nodeOrTag",
                required: true,
                default: None,
                multiple: true,
            },
        ],
    ),
    (
        "aliasByTags",
        "Alias",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "tags",
                kind: "nodeOrTag",
                required: true,
                default: None,
                multiple: true,
            },
        ],
    ),
    (
        "aliasSub",
        "Alias",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "search",
                kind: "string",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "replace",
                kind: "string",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "alpha",
        "Graph",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "alpha",
                kind: "float",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "applyByNode",
        "Combine",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "nodeNum",
                kind: "node",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "templateFunction",
                kind: "string",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "newName",
                kind: "string",
                required: false,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "asPercent",
        "Combine",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "total",
                kind: "any",
                required: false,
                default: None,
                multiple: false,
            },
            P {
                name: "nodes",
                kind: "nodeOrTag",
                required: false,
                default: None,
                multiple: true,
            },
        ],
    ),
    (
        "averageAbove",
        "Filter Series",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "n",
                kind: "float",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "averageBelow",
        "Filter Series",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "n",
                kind: "float",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "averageSeries",
        "Combine",
        &[P {
            name: "seriesLists",
            kind: "seriesList",
            required: true,
            default: None,
            multiple: true,
        }],
    ),
    (
        "averageSeriesWithWildcards",
        "Combine",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "position",
                kind: "node",
                required: false,
                default: None,
                multiple: true,
            },
        ],
    ),
    (
        "avg",
        "Combine",
        &[P {
            name: "seriesLists",
            kind: "seriesList",
            required: true,
            default: None,
            multiple: true,
        }],
    ),
    (
        "cactiStyle",
        "Special",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "system",
                kind: "string",
                required: false,
                default: None,
                multiple: false,
            },
            P {
                name: "units",
                kind: "string",
                required: false,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "color",
        "Graph",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "theColor",
                kind: "string",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "consolidateBy",
        "Special",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "consolidationFunc",
                kind: "string",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "constantLine",
        "Special",
        &[P {
            name: "value",
            kind: "float",
            required: true,
            default: None,
            multiple: false,
        }],
    ),
    (
        "countSeries",
        "Combine",
        &[P {
            name: "seriesLists",
            kind: "seriesList",
            required: false,
            default: None,
            multiple: true,
        }],
    ),
    (
        "currentAbove",
        "Filter Series",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "n",
                kind: "float",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "currentBelow",
        "Filter Series",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "n",
                kind: "float",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "dashed",
        "Graph",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "dashLength",
                kind: "integer",
                required: false,
                default: Some("5"),
                multiple: false,
            },
        ],
    ),
    (
        "delay",
        "Transform",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "steps",
                kind: "integer",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "derivative",
        "Transform",
        &[P {
            name: "seriesList",
            kind: "seriesList",
            required: true,
            default: None,
            multiple: false,
        }],
    ),
    (
        "diffSeries",
        "Combine",
        &[P {
            name: "seriesLists",
            kind: "seriesList",
            required: true,
            default: None,
            multiple: true,
        }],
    ),
    (
        "divideSeries",
        "Combine",
        &[
            P {
                name: "dividendSeriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "divisorSeries",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "divideSeriesLists",
        "Combine",
        &[
            P {
                name: "dividendSeriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "divisorSeriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "drawAsInfinite",
        "Graph",
        &[P {
            name: "seriesList",
            kind: "seriesList",
            required: true,
            default: None,
            multiple: false,
        }],
    ),
    (
        "exclude",
        "Filter Series",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "pattern",
                kind: "string",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "grep",
        "Filter Series",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "pattern",
                kind: "string",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "group",
        "Combine",
        &[P {
            name: "seriesLists",
            kind: "seriesList",
            required: false,
            default: None,
            multiple: true,
        }],
    ),
    (
        "groupByNode",
        "Combine",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "nodeNum",
                kind: "nodeOrTag",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "callback",
                kind: "aggOrSeriesFunc",
                required: false,
                default: Some("\"average\""),
                multiple: false,
            },
        ],
    ),
    (
        "groupByNodes",
        "Combine",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "callback",
                kind: "aggOrSeriesFunc",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "nodes",
                kind: "nodeOrTag",
                required: false,
                default: None,
                multiple: true,
            },
        ],
    ),
    (
        "groupByTags",
        "Combine",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "callback",
                kind: "aggOrSeriesFunc",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "tags",
                kind: "tag",
                required: true,
                default: None,
                multiple: true,
            },
        ],
    ),
    (
        "highest",
        "Filter Series",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "n",
                kind: "integer",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "func",
                kind: "aggFunc",
                required: false,
                default: Some("\"average\""),
                multiple: false,
            },
        ],
    ),
    (
        "highestAverage",
        "Filter Series",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "n",
                kind: "integer",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "highestCurrent",
        "Filter Series",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "n",
                kind: "integer",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "highestMax",
        "Filter Series",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "n",
                kind: "integer",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "hitcount",
        "Transform",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "intervalString",
                kind: "interval",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "alignToInterval",
                kind: "boolean",
                required: false,
                default: Some("false"),
                multiple: false,
            },
        ],
    ),
    (
        "integral",
        "Transform",
        &[P {
            name: "seriesList",
            kind: "seriesList",
            required: true,
            default: None,
            multiple: false,
        }],
    ),
    (
        "invert",
        "Transform",
        &[P {
            name: "seriesList",
            kind: "seriesList",
            required: true,
            default: None,
            multiple: false,
        }],
    ),
    (
        "keepLastValue",
        "Transform",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "limit",
                kind: "intOrInf",
                required: false,
                default: Some("Infinity"),
                multiple: false,
            },
        ],
    ),
    (
        "legendValue",
        "Alias",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "valuesTypes",
                kind: "string",
                required: false,
                default: None,
                multiple: true,
            },
        ],
    ),
    (
        "limit",
        "Filter Series",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "n",
                kind: "integer",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "lineWidth",
        "Graph",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "width",
                kind: "float",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "log",
        "Transform",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "base",
                kind: "integer",
                required: false,
                default: Some("10"),
                multiple: false,
            },
        ],
    ),
    (
        "lowest",
        "Filter Series",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "n",
                kind: "integer",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "func",
                kind: "aggFunc",
                required: false,
                default: Some("\"average\""),
                multiple: false,
            },
        ],
    ),
    (
        "lowestAverage",
        "Filter Series",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "n",
                kind: "integer",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "lowestCurrent",
        "Filter Series",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "n",
                kind: "integer",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "maxSeries",
        "Combine",
        &[P {
            name: "seriesLists",
            kind: "seriesList",
            required: true,
            default: None,
            multiple: true,
        }],
    ),
    (
        "maximumAbove",
        "Filter Series",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "n",
                kind: "float",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "maximumBelow",
        "Filter Series",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "n",
                kind: "float",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "minSeries",
        "Combine",
        &[P {
            name: "seriesLists",
            kind: "seriesList",
            required: true,
            default: None,
            multiple: true,
        }],
    ),
    (
        "minimumAbove",
        "Filter Series",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "n",
                kind: "float",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "minimumBelow",
        "Filter Series",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "n",
                kind: "float",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "mostDeviant",
        "Filter Series",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "n",
                kind: "integer",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "movingAverage",
        "Calculate",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "windowSize",
                kind: "intOrInterval",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "xFilesFactor",
                kind: "float",
                required: false,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "movingMax",
        "Calculate",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "windowSize",
                kind: "intOrInterval",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "xFilesFactor",
                kind: "float",
                required: false,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "movingMedian",
        "Calculate",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "windowSize",
                kind: "intOrInterval",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "xFilesFactor",
                kind: "float",
                required: false,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "movingMin",
        "Calculate",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "windowSize",
                kind: "intOrInterval",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "xFilesFactor",
                kind: "float",
                required: false,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "movingSum",
        "Calculate",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "windowSize",
                kind: "intOrInterval",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "xFilesFactor",
                kind: "float",
                required: false,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "movingWindow",
        "Calculate",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "windowSize",
                kind: "intOrInterval",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "func",
                kind: "aggFunc",
                required: false,
                default: Some("\"average\""),
                multiple: false,
            },
            P {
                name: "xFilesFactor",
                kind: "float",
                required: false,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "multiplySeries",
        "Combine",
        &[P {
            name: "seriesLists",
            kind: "seriesList",
            required: true,
            default: None,
            multiple: true,
        }],
    ),
    (
        "nonNegativeDerivative",
        "Transform",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "maxValue",
                kind: "float",
                required: false,
                default: None,
                multiple: false,
            },
            P {
                name: "minValue",
                kind: "float",
                required: false,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "offset",
        "Transform",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "factor",
                kind: "float",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "perSecond",
        "Transform",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "maxValue",
                kind: "float",
                required: false,
                default: None,
                multiple: false,
            },
            P {
                name: "minValue",
                kind: "float",
                required: false,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "pow",
        "Transform",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "factor",
                kind: "float",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "rangeOfSeries",
        "Combine",
        &[P {
            name: "seriesLists",
            kind: "seriesList",
            required: true,
            default: None,
            multiple: true,
        }],
    ),
    (
        "removeAbovePercentile",
        "Filter Data",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "n",
                kind: "float",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "removeAboveValue",
        "Filter Data",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "n",
                kind: "float",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "removeBelowPercentile",
        "Filter Data",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "n",
                kind: "float",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "removeBelowValue",
        "Filter Data",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "n",
                kind: "float",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "removeEmptySeries",
        "Filter Series",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "xFilesFactor",
                kind: "float",
                required: false,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "scale",
        "Transform",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "factor",
                kind: "float",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "scaleToSeconds",
        "Transform",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "seconds",
                kind: "float",
                required: true,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "secondYAxis",
        "Graph",
        &[P {
            name: "seriesList",
            kind: "seriesList",
            required: true,
            default: None,
            multiple: false,
        }],
    ),
    (
        "seriesByTag",
        "Special",
        &[P {
            name: "tagExpressions",
            kind: "string",
            required: true,
            default: None,
            multiple: true,
        }],
    ),
    (
        "sortByMaxima",
        "Sorting",
        &[P {
            name: "seriesList",
            kind: "seriesList",
            required: true,
            default: None,
            multiple: false,
        }],
    ),
    (
        "sortByMinima",
        "Sorting",
        &[P {
            name: "seriesList",
            kind: "seriesList",
            required: true,
            default: None,
            multiple: false,
        }],
    ),
    (
        "sortByName",
        "Sorting",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "natural",
                kind: "boolean",
                required: false,
                default: Some("false"),
                multiple: false,
            },
            P {
                name: "reverse",
                kind: "boolean",
                required: false,
                default: Some("false"),
                multiple: false,
            },
        ],
    ),
    (
        "sortByTotal",
        "Sorting",
        &[P {
            name: "seriesList",
            kind: "seriesList",
            required: true,
            default: None,
            multiple: false,
        }],
    ),
    (
        "squareRoot",
        "Transform",
        &[P {
            name: "seriesList",
            kind: "seriesList",
            required: true,
            default: None,
            multiple: false,
        }],
    ),
    (
        "stacked",
        "Graph",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "stack",
                kind: "string",
                required: false,
                default: None,
                multiple: false,
            },
        ],
    ),
    (
        "stddevSeries",
        "Combine",
        &[P {
            name: "seriesLists",
            kind: "seriesList",
            required: true,
            default: None,
            multiple: true,
        }],
    ),
    (
        "sum",
        "Combine",
        &[P {
            name: "seriesLists",
            kind: "seriesList",
            required: true,
            default: None,
            multiple: true,
        }],
    ),
    (
        "sumSeries",
        "Combine",
        &[P {
            name: "seriesLists",
            kind: "seriesList",
            required: true,
            default: None,
            multiple: true,
        }],
    ),
    (
        "sumSeriesWithWildcards",
        "Combine",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "position",
                kind: "node",
                required: false,
                default: None,
                multiple: true,
            },
        ],
    ),
    (
        "summarize",
        "Transform",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "intervalString",
                kind: "interval",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "func",
                kind: "aggFunc",
                required: false,
                default: Some("\"sum\""),
                multiple: false,
            },
            P {
                name: "alignToFrom",
                kind: "boolean",
                required: false,
                default: Some("false"),
                multiple: false,
            },
        ],
    ),
    (
        "timeShift",
        "Transform",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "timeShift",
                kind: "interval",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "resetEnd",
                kind: "boolean",
                required: false,
                default: Some("true"),
                multiple: false,
            },
            P {
                name: "alignDst",
                kind: "boolean",
                required: false,
                default: Some("false"),
                multiple: false,
            },
        ],
    ),
    (
        "timeStack",
        "Transform",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "timeShiftUnit",
                kind: "interval",
                required: false,
                default: Some("\"1d\""),
                multiple: false,
            },
            P {
                name: "timeShiftStart",
                kind: "integer",
                required: false,
                default: Some("0"),
                multiple: false,
            },
            P {
                name: "timeShiftEnd",
                kind: "integer",
                required: false,
                default: Some("7"),
                multiple: false,
            },
        ],
    ),
    (
        "transformNull",
        "Transform",
        &[
            P {
                name: "seriesList",
                kind: "seriesList",
                required: true,
                default: None,
                multiple: false,
            },
            P {
                name: "default",
                kind: "float",
                required: false,
                default: Some("0"),
                multiple: false,
            },
            P {
                name: "referenceSeries",
                kind: "seriesList",
                required: false,
                default: None,
                multiple: false,
            },
        ],
    ),
];

/// The aggregation names `aggregate`, `groupByNode` and friends take.
pub const AGG_FUNCS: &[&str] = &[
    "average", "avg", "avg_zero", "count", "current", "diff", "last", "max", "median", "min",
    "multiply", "range", "rangeOf", "stddev", "sum", "total",
];

fn options(kind: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = match kind {
        "aggFunc" => AGG_FUNCS.iter().map(|s| s.to_string()).collect(),
        "aggOrSeriesFunc" => AGG_FUNCS
            .iter()
            .chain(AGGREGATORS)
            .map(|s| s.to_string())
            .collect(),
        _ => return None,
    };
    out.sort();
    out.dedup();
    Some(out)
}

/// The series functions graphite-web marks as aggregators: what
/// `groupByNode` and friends take as a callback besides the names above.
pub const AGGREGATORS: &[&str] = &[
    "asPercent",
    "averageSeries",
    "averageSeriesWithWildcards",
    "countSeries",
    "diffSeries",
    "maxSeries",
    "minSeries",
    "multiplySeries",
    "rangeOfSeries",
    "stddevSeries",
    "sumSeries",
    "sumSeriesWithWildcards",
];

fn param_json(p: &P) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(p.name));
    o.insert("type".into(), json!(p.kind));
    if p.required {
        o.insert("required".into(), json!(true));
    }
    match p.default {
        // Written 1e9999 as graphite-web writes infinity (see [`to_text`]).
        Some("Infinity") => {
            o.insert("default".into(), json!(INFINITY));
        }
        Some(d) => {
            if let Ok(v) = serde_json::from_str::<Value>(d) {
                o.insert("default".into(), v);
            }
        }
        None => {}
    }
    if p.multiple {
        o.insert("multiple".into(), json!(true));
    }
    if let Some(opts) = options(p.kind) {
        o.insert("options".into(), json!(opts));
    }
    Value::Object(o)
}

/// `name(a, b=1, *c)`, as graphite-web's `function` field.
fn signature(name: &str, params: &[P]) -> String {
    let args: Vec<String> = params
        .iter()
        .map(|p| match (p.multiple, p.default) {
            (true, _) => format!("*{}", p.name),
            (false, Some(d)) => format!("{}={}", p.name, d.replace('"', "'")),
            (false, None) => p.name.to_string(),
        })
        .collect();
    format!("{name}({})", args.join(", "))
}

pub fn info(name: &str, group: &str, params: &[P]) -> Value {
    json!({
        "name": name,
        "function": signature(name, params),
        "description": format!("graphite-web's {name}, as carbyne evaluates it."),
        "module": "graphite.render.functions",
        "group": group,
        "params": params.iter().map(param_json).collect::<Vec<_>>(),
    })
}

/// graphite-web's `/functions` (`grouped`, `group=`) over [`CATALOG`].
pub fn list(grouped: bool, group: Option<&str>) -> Value {
    let mut out = Map::new();
    for (name, g, params) in CATALOG {
        if group.is_some_and(|want| want != *g) {
            continue;
        }
        let v = info(name, g, params);
        if grouped {
            let entry = out
                .entry(g.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = entry {
                m.insert(name.to_string(), v);
            }
        } else {
            out.insert(name.to_string(), v);
        }
    }
    Value::Object(out)
}

/// Stands for infinity until [`to_text`] writes it.
const INFINITY: &str = "__carbyne_infinity__";

/// The JSON text, infinity written `1e9999` as graphite-web writes it.
pub fn to_text(v: &Value) -> String {
    v.to_string().replace(&format!("\"{INFINITY}\""), "1e9999")
}

/// One function's description (`/functions/<name>`).
pub fn one(name: &str) -> Option<Value> {
    CATALOG
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(n, g, p)| info(n, g, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_is_described_and_every_description_runs() {
        let mut described: Vec<&str> = CATALOG.iter().map(|c| c.0).collect();
        described.sort_unstable();
        assert_eq!(described, super::super::names());
        assert_eq!(
            signature(
                "scale",
                CATALOG
                    .iter()
                    .find(|c| c.0 == "scale")
                    .map_or(&[][..], |c| c.2)
            ),
            "scale(seriesList, factor)"
        );
        let opts = options("aggOrSeriesFunc").unwrap_or_default();
        assert!(opts.contains(&"sumSeries".to_string()) && opts.contains(&"median".to_string()));
    }
}
