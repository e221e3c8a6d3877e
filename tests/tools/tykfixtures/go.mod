// Generator for tests/fixtures/tyk (see main.go and scripts/gen-tyk-fixtures).
//
// tyk-pump v1.16.0 is the newest v1.x the module proxy served when this was
// written (v1.16.1, v1.17.0 and the version list endpoint returned 403).
// Only its analytics and serializer packages are imported. tyk-pump's own
// `replace gorm.io/gorm => github.com/TykTechnologies/gorm ...` is not
// inherited by dependents, so upstream gorm.io/gorm is used here; the
// analytics package only needs gorm.Expr from it. (The replace target of
// v1.16.0 is not on the proxy, which is why the pumps package is not built.)
module tykfixtures

go 1.25.0

require (
	github.com/TykTechnologies/storage v1.3.4
	github.com/TykTechnologies/tyk-pump v1.16.0
	go.mongodb.org/mongo-driver v1.17.7
	gopkg.in/vmihailenco/msgpack.v2 v2.9.1
	gorm.io/gorm v1.30.1
)

require (
	github.com/fatih/structs v1.1.0 // indirect
	github.com/golang/protobuf v1.5.3 // indirect
	github.com/jinzhu/inflection v1.0.0 // indirect
	github.com/jinzhu/now v1.1.5 // indirect
	github.com/oschwald/maxminddb-golang v1.11.0 // indirect
	github.com/sirupsen/logrus v1.9.3 // indirect
	golang.org/x/net v0.55.0 // indirect
	golang.org/x/sys v0.45.0 // indirect
	golang.org/x/text v0.37.0 // indirect
	google.golang.org/appengine v1.6.7 // indirect
	google.golang.org/protobuf v1.34.2 // indirect
	gopkg.in/mgo.v2 v2.0.0-20190816093944-a6b53ec6cb22 // indirect
)
