// The stored documents of mongo-pump-aggregate after each of two batches (aggregates.json
// mongo.<org>.pump_writes).
//
// Tyk's pump (pumps/mongo_aggregate.go DoAggregatedWriting) writes one org aggregate as:
// Upsert(query, AsChange()) returning the new document, decode it into an
// AnalyticsRecordAggregate, then Upsert(query, returned.AsTimeUpdate()). Both Tyk functions
// run here unmodified; the MongoDB server's part -- applying $inc/$set/$max/$min with dotted
// paths to the stored document, seeding an upserted document with the filter's fields -- is
// emulated by applyUpdate on a plain map. The decode uses the pump's BSON registry, so the
// returned document loses sub-millisecond time precision and carries whatever the previous
// AsTimeUpdate stored, as on a real server.
package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/TykTechnologies/storage/persistent/model"
	"github.com/TykTechnologies/tyk-pump/analytics"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// pumpWrites replays the pump on batch 1 (all records) then batch 2 (the first half), with
// a fresh AggregateData per batch, and returns org -> [document after batch 1, after batch 2].
func pumpWrites(batches [][]interface{}, track bool, ignore []string, aggTime int) map[string][]interface{} {
	stored := map[string]map[string]interface{}{}
	out := map[string][]interface{}{}
	for _, batch := range batches {
		res, err := aggregate(batch, track, ignore, "", aggTime)
		must(err)
		orgs := make([]string, 0, len(res))
		for org := range res {
			orgs = append(orgs, org)
		}
		sort.Strings(orgs)
		for _, org := range orgs {
			ag := res[org]
			doc := stored[org]
			if doc == nil || !sameTime(doc["timestamp"], ag.TimeStamp) {
				doc = bsonTree(model.DBM{"orgid": ag.OrgID, "timestamp": ag.TimeStamp})
			}
			applyUpdate(doc, bsonTree(ag.AsChange()))
			var returned analytics.AnalyticsRecordAggregate
			raw, err := bson.MarshalWithRegistry(bsonReg, doc)
			must(err)
			must(bson.UnmarshalWithRegistry(bsonReg, raw, &returned))
			applyUpdate(doc, bsonTree(returned.AsTimeUpdate()))
			stored[org] = doc
			out[org] = append(out[org], storedExtJSON(doc))
		}
	}
	return out
}

func sameTime(v interface{}, t time.Time) bool {
	switch x := v.(type) {
	case time.Time:
		return x.Equal(t.Truncate(time.Millisecond))
	case primitive.DateTime:
		return x.Time().Equal(t.Truncate(time.Millisecond))
	}
	return false
}

// bsonTree turns a value into the generic tree a server holds: documents as
// map[string]interface{}, arrays as []interface{}, scalars with their BSON types.
func bsonTree(v interface{}) map[string]interface{} {
	raw, err := bson.MarshalWithRegistry(bsonReg, bson.M{"v": v})
	must(err)
	var m bson.M
	must(bson.Unmarshal(raw, &m))
	return generic(m["v"]).(map[string]interface{})
}

func generic(v interface{}) interface{} {
	switch x := v.(type) {
	case bson.M:
		return genericMap(map[string]interface{}(x))
	case map[string]interface{}:
		return genericMap(x)
	case bson.D:
		m := map[string]interface{}{}
		for _, e := range x {
			m[e.Key] = generic(e.Value)
		}
		return m
	case bson.A:
		return genericSlice([]interface{}(x))
	case []interface{}:
		return genericSlice(x)
	}
	return v
}

func genericMap(x map[string]interface{}) map[string]interface{} {
	m := make(map[string]interface{}, len(x))
	for k, e := range x {
		m[k] = generic(e)
	}
	return m
}

func genericSlice(x []interface{}) []interface{} {
	s := make([]interface{}, len(x))
	for i, e := range x {
		s[i] = generic(e)
	}
	return s
}

// applyUpdate applies a {$inc,$set,$max,$min} update with dotted paths, as MongoDB does.
func applyUpdate(doc map[string]interface{}, update map[string]interface{}) {
	for _, op := range []string{"$inc", "$set", "$max", "$min"} {
		fields, _ := update[op].(map[string]interface{})
		for path, val := range fields {
			parent, key := walk(doc, path)
			old, exists := parent[key]
			switch op {
			case "$set":
				parent[key] = val
			case "$inc":
				if !exists {
					parent[key] = val
				} else {
					parent[key] = addNum(old, val)
				}
			case "$max":
				if !exists || num(val) > num(old) {
					parent[key] = val
				}
			case "$min":
				if !exists || num(val) < num(old) {
					parent[key] = val
				}
			}
		}
	}
}

func walk(doc map[string]interface{}, path string) (map[string]interface{}, string) {
	parts := strings.Split(path, ".")
	cur := doc
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			cur[p] = next
		}
		cur = next
	}
	return cur, parts[len(parts)-1]
}

func num(v interface{}) float64 {
	switch x := v.(type) {
	case int32:
		return float64(x)
	case int64:
		return float64(x)
	case float64:
		return x
	}
	panic(fmt.Sprintf("not a number: %T", v))
}

// addNum is $inc's type rule: double if either is a double, else int64 if either is an
// int64 (or an int32 sum overflows), else int32.
func addNum(a, b interface{}) interface{} {
	_, af := a.(float64)
	_, bf := b.(float64)
	if af || bf {
		return num(a) + num(b)
	}
	_, a64 := a.(int64)
	_, b64 := b.(int64)
	sum := int64(num(a)) + int64(num(b))
	if a64 || b64 || sum != int64(int32(sum)) {
		return sum
	}
	return int32(sum)
}

// storedExtJSON is a stored document as canonical Extended JSON, keys sorted and each lists.*
// array sorted by its JSON text (Tyk's order is Go map order, i.e. random).
func storedExtJSON(doc map[string]interface{}) interface{} {
	ext := extJSON(doc).(map[string]interface{})
	if lists, ok := ext["lists"].(map[string]interface{}); ok {
		sortLists(lists)
	}
	return ext
}

func sortLists(m map[string]interface{}) {
	for _, v := range m {
		switch x := v.(type) {
		case []interface{}:
			sort.SliceStable(x, func(i, j int) bool { return string(goJSON(x[i])) < string(goJSON(x[j])) })
		case map[string]interface{}:
			sortLists(x)
		}
	}
}
